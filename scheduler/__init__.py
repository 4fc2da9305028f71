"""Proactive outreach: check-ins and campaigns, safely, through one policy gate."""
