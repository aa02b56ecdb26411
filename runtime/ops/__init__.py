"""Operations on a deployment: provisioning (``init``), dead letters (list, replay, purge)."""
