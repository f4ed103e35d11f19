"""The run model and its renderings: signoff.json, signoff.html."""
