"""redisops: plan-first operations for Redis master/replica clusters."""

__version__ = "0.1.0"
