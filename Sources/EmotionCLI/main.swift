print("emotion")
