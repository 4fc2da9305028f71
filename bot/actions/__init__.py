"""Custom actions for the Rasa assistant, one module per capability (served by rasa_sdk)."""
