"""The profiled (RE)ML engine for nested linear mixed models; knows only arrays, no pandas."""
