"""TODO scale"""
