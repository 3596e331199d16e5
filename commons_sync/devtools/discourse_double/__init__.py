"""A stand-in for Discourse that speaks real HTTP, for tests and demos (Discourse cannot run here).

It serves the admin API calls commons-sync makes with Discourse's shapes, its rate limit and its
errors, sends signed webhooks like Discourse's background jobs (unordered, retried with new ids),
acts as a DiscourseConnect provider and shows the forum as plain HTML. Test-control endpoints
under `/_double/` set it up, act as its users and inject failures.
"""

from .app import create_double
from .config import DoubleConfig
from .errors import ControlError, DoubleError, Forbidden, InvalidRequest, NotFound, StartError
from .running import ControlClient, RunningDouble
from .webhooks import sign

__all__ = ["ControlClient", "ControlError", "DoubleConfig", "DoubleError", "Forbidden", "InvalidRequest",
           "NotFound", "RunningDouble", "StartError", "create_double", "sign"]
