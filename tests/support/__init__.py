"""Test support shared across test folders (a local Hugging Face Hub endpoint)."""
