"""Fault injection for cutover rehearsals: network toxics between clients and PostgreSQL."""
