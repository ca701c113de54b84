"""The server of src.serve: the request checks, the LitServe API, the page."""
