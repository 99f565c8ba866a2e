"""XEP-0363 HTTP File Upload: signed PUT slots from Prosody, Metronome, ejabberd and hmac-file-server."""
