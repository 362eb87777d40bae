"""python -m simulator --http-port 8900 --apns-port 8901: serve until SIGINT or SIGTERM."""

import argparse
import base64
import json
import logging
import secrets
import shlex
import signal
import threading
from pathlib import Path

from simulator.credentials import apns_signing_key, fcm_service_account, sendgrid_event_keypair
from simulator.recording import DEFAULT_RECORD_LIMIT
from simulator.server import Simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8900, help="SendGrid, Twilio, FCM and control API")
    parser.add_argument("--apns-port", type=int, default=8901, help="APNs, cleartext HTTP/2")
    parser.add_argument("--record-limit", type=int, default=DEFAULT_RECORD_LIMIT,
                        help="requests kept for inspection; the oldest go first (default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--env-file", help="write throwaway credentials and a file of Herald settings pointing at this "
                                           "simulator (source it before `make run`)")
    parser.add_argument("--receipts-to", metavar="HERALD_URL",
                        help="post signed SendGrid events and Twilio callbacks to this Herald (with --env-file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    simulator = Simulator(args.http_port, args.apns_port, args.host, args.record_limit).start()
    print(f"simulator: SendGrid, Twilio, FCM, control API on {simulator.http_url}", flush=True)
    print(f"simulator: APNs (cleartext HTTP/2) on {simulator.apns_host}:{simulator.apns_port}", flush=True)
    if args.env_file:
        write_env_file(Path(args.env_file), simulator, args.receipts_to)
        print(f"simulator: Herald settings written to {args.env_file}", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        simulator.stop()
        print("simulator: stopped", flush=True)


def write_env_file(path: Path, simulator: Simulator, receipts_to: str | None) -> None:
    """Credentials for every provider, and the environment that points Herald at this simulator."""
    folder = path.parent / "simulator-credentials"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fcm.json").write_text(json.dumps(fcm_service_account(simulator.http_url + "/token")))
    apns_pem, key_id, team_id = apns_signing_key()
    (folder / "apns.p8").write_text(apns_pem)
    sendgrid_private, sendgrid_public = sendgrid_event_keypair()
    twilio_token = secrets.token_hex(16)
    settings = {
        "SENDGRID_API_KEY": "SG.simulator", "SENDGRID_API_HOST": simulator.http_url,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_public,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": twilio_token,
        "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_HOST": simulator.http_url,
        "FCM_CREDENTIALS_FILE": str((folder / "fcm.json").resolve()), "FCM_API_HOST": simulator.http_url,
        "APNS_KEY_FILE": str((folder / "apns.p8").resolve()), "APNS_KEY_ID": key_id, "APNS_TEAM_ID": team_id,
        "APNS_TOPIC": "com.example.herald", "APNS_USE_SANDBOX": "1",
        "APNS_HOST": f"http://{simulator.apns_host}:{simulator.apns_port}",
        "HERALD_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "HERALD_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    if receipts_to:
        settings["PUBLIC_BASE_URL"] = receipts_to.rstrip("/")
        simulator.client().configure_receipts(
            sendgrid_webhook_url=f"{receipts_to.rstrip('/')}/api/v1/webhooks/sendgrid",
            sendgrid_private_key_pem=sendgrid_private, twilio_auth_token=twilio_token,
        )
    path.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in settings.items()))


if __name__ == "__main__":
    main()
