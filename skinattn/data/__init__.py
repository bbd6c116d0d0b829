"""Data: readers of dermoscopy collections, validation, manifests, splits, balancing and caches."""
