"""TODO ledger"""
