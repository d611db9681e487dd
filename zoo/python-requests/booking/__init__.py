"""St Elsewhere booking integration: Salesforce (requests) + local LLM (openai-python)."""
