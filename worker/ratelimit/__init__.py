"""The account-wide Zoom rate limiter (``bucket.py``) and daily budget (``budget.py``)."""

from worker.ratelimit.bucket import AccountLimiter, retry_after_seconds
from worker.ratelimit.budget import DailyBudget, account_key, charging
from worker.ratelimit.plans import PLAN_LIMITS, CategoryLimit

__all__ = ["PLAN_LIMITS", "AccountLimiter", "CategoryLimit", "DailyBudget", "account_key",
           "charging", "retry_after_seconds"]
