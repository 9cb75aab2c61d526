"""mvtools.augment"""
