print("classifier-bench: not yet")
