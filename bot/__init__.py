"""CareLoop: a customer-care assistant that keeps customers."""
