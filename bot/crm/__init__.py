"""The CRM: the company's memory of every customer, order, conversation and decision."""
