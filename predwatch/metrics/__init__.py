"""Quality metrics kept as mergeable sufficient statistics."""
