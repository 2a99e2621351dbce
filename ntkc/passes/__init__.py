"""Compiler passes: structure rules, propagation, cotangent plan, terms, sharing, order, method choice."""
