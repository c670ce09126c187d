"""``python -m dispatcher``: the same command line as the ``dispatcher`` script."""

from dispatcher.cli.commands import main

if __name__ == "__main__":
    main()
