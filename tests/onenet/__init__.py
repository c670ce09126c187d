"""The OneNET client: answers, auth, the transport seam, the newer platform."""
