"""Model servers to run load tests against, started and stopped by the test session."""
