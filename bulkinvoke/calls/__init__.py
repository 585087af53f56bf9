"""TODO calls"""
