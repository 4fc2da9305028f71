"""`make bench`: CareLoop's speed, capacity, accuracy and losses, measured on the real stack.

`python -m bench` starts the action server, Rasa and the gateway on free ports with a bench-only
CRM under var/bench/, drives them with simulated customers and a campaign, and prints one table
(also written as JSON under var/bench/). Nothing here is used by the services themselves.
"""
