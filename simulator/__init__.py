"""A local stand-in for SendGrid, Twilio, FCM and APNs that the real SDKs talk to.

It records every request, injects faults and rate limits on demand, answers magic recipients the
way the providers' test fixtures do, and posts signed delivery receipts. See README.md.
"""

from simulator.client import SimulatorClient, SimulatorError
from simulator.server import Simulator

__all__ = ["Simulator", "SimulatorClient", "SimulatorError"]
