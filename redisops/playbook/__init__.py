"""Incident runbooks: YAML playbooks whose steps are redisops operations.

- :mod:`~redisops.playbook.schema`: the file format and its static validation;
- :mod:`~redisops.playbook.expr`: the safe expression language of ``when:`` and ``{{ }}``;
- :mod:`~redisops.playbook.actions`: the actions, one adapter each over the operations;
- :mod:`~redisops.playbook.overlay`: the predicted cluster a dry run carries forward;
- :mod:`~redisops.playbook.runner` and :mod:`~redisops.playbook.journal`: running,
  journaling and resuming;
- :mod:`~redisops.playbook.library`: shipped and local playbooks.
"""
