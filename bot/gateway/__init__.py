"""The gateway: the only service that talks to customers (web chat widget, Telegram), in front of Rasa."""
