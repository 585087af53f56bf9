"""TODO results"""
