"""The load test's parts (tests/bench/load_api.py is the command): the world it seeds
(world), the statistics and one data center's billing system (client), the accounting
that must balance to the cent (accounting), and the processes it runs (runner)."""
