"""mvtools.train"""
