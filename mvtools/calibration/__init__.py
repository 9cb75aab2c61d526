"""mvtools.calibration"""
