"""Operating CareLoop: the .env file, model training, the process supervisor."""
