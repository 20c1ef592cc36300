"""The reference payments API: the built-in target every run and test can use.

``process.ReferenceTarget`` starts it as a subprocess; ``server.serve`` runs it in the
foreground; ``auth`` holds PhonePe's webhook signature (cheap to import: no FastAPI here).
"""
