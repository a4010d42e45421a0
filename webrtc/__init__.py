"""Telemedicine: WebRTC signaling, ICE/TURN credentials and the connection-test peer (issue #5)."""
