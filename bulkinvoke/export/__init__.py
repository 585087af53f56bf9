"""TODO export"""
