"""TODO manifest"""
