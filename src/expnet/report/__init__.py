"""Showing results: terminal tables and self-contained HTML pages."""
