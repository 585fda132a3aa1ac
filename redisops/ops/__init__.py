"""Operations: each turns a snapshot and a request into a Plan, and registers the step
routines its plan needs with the executor (:mod:`redisops.plan`)."""
