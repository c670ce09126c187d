#!/usr/bin/env bash
# Regenerates docs/report.png, the README's picture of `dispatcher report --format html`: the
# example job (jobs/example.yaml, 3,000 devices) is sent to the emulator with simulated devices,
# what became of each command is read back with `dispatcher status --watch`, and the HTML report
# is rendered by headless Chromium. The job's window is cut to two minutes so that devices that
# never wake expire while one waits: about four minutes in all.
#
# Needs .venv (`make test` sets it up) and Chromium (`apt-get install chromium`, or CHROMIUM=path).
# Usage: scripts/report_screenshot.sh [OUTPUT.png [PAGE.html]]   (PAGE.html: keep the page too)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/report.png}
page=${2:-}
bin=.venv/bin
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$chromium" ]; then
    echo "no chromium found: apt-get install chromium, or set CHROMIUM" >&2
    exit 1
fi

work=$(mktemp -d)
emulator_pid=
cleanup() {
    if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/jobs"
cp jobs/example-fleet.csv "$work/jobs/"
# The example job, delivered from the moment it is sent, within two minutes.
sed -e '/^  valid_time:/d' -e 's/^  expired_time: .*/  expired_time: +2m/' \
    jobs/example.yaml >"$work/jobs/example.yaml"
# Three devices deep in the fleet are not in the product (errno 1).
mapfile -t foreign < <(sed -n '1200p;1900p;2600p' jobs/example-fleet.csv | cut -d, -f1 | tr -d '\r')

port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$bin/dispatcher" emulator --port "$port" --seed 7 --fail-rate 0.02 --cut-after 0.005 \
    --wake-every 45 --never-wake 0.03 --device-errors 0.01 \
    --foreign-imei "${foreign[0]}" --foreign-imei "${foreign[1]}" --foreign-imei "${foreign[2]}" \
    2>"$work/emulator.log" &
emulator_pid=$!
"$bin/python" - "$port" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the emulator did not start")
EOF

export ONENET_API_KEY=screenshot-key
here=$PWD
cd "$work"  # so that the report shows sources as jobs/example-fleet.csv:LINE
# Exit 3: some commands were rejected (the foreign devices), as intended.
"$here/$bin/dispatcher" run jobs/example.yaml --base-url "$url" --rate 25 || [ $? -eq 3 ]
"$here/$bin/dispatcher" status jobs/example.yaml.ledger.db --base-url "$url" --rate 0 \
    --watch --interval 20 --no-progress
"$here/$bin/dispatcher" report jobs/example.yaml.ledger.db --format html -o report.html
cd "$here"
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1280,2000 --screenshot="$out" "file://$work/report.html" 2>/dev/null
if [ -n "$page" ]; then cp "$work/report.html" "$page"; fi
echo "screenshot written to $out"
