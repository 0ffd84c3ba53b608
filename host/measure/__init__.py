"""Measuring on a device: target profiles, the agent client (and the checks of what an agent sends), a local
agent for ``--target local``, and the deploy that runs the measurement protocol (``protocol``: its defaults,
``until_decided``: ``--episodes auto``) and stores every job in the results database.

Imports the store and the agent's public contract; never the report (``host.decision`` holds the statistical
rules both use)."""
