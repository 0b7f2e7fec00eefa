"""Generic test support: fake AWS environment, Lambda context, EMF/log capture, event shapes."""
