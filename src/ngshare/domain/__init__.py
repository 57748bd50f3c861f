"""Domain logic shared by the API versions: file sets, lookups, rosters."""
