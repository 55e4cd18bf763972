"""Attention diagnostics (Jain & Wallace 2019; Wiegreffe & Pinter 2019) for BERT-family classifiers.

intervention.py replaces a layer's attention weights through transformers' AttentionInterface;
correlation.py, permutation.py, adversarial.py and uniform.py are the four diagnostics;
report.py draws the plots and writes the HTML summary. ``expnet diagnose`` runs them all.
"""
