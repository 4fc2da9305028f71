"""Marketers' campaigns, one idea a module.

- `schedule`: when a campaign sends (the Schedule value object and its checks against the clock);
- `draft`: what a marketer entered, validated (InvalidAudience says what to fix);
- `lifecycle`: storing, editing and moving a campaign between its states (CampaignStatus);
- `fanout`: one delivery per audience member for each due occurrence;
- `replies`: which sent messages the customer answered;
- `figures`: what the console and the CLI read (preview, counts, delivery rows).
"""
