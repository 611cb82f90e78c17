"""Measuring tools: `assistant bench` (index times, ask and chat latency, memory, scale, peers).

Not part of answering: nothing in the product imports it but the CLI.
"""
