"""Event time: watermarks and the prediction-label join."""
