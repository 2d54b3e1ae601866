// ModelPackage
