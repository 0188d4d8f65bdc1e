"""The account-wide Zoom rate limiter (see ``bucket.py``)."""

from worker.ratelimit.bucket import PLAN_LIMITS, AccountLimiter, CategoryLimit

__all__ = ["PLAN_LIMITS", "AccountLimiter", "CategoryLimit"]
