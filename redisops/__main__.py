"""``python -m redisops`` is the same as the ``redisops`` command."""

from redisops.cli import main

if __name__ == "__main__":
    main()
