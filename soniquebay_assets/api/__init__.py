"""The catalog over HTTP: GraphQL, REST (covers, playlists, health, Prometheus metrics) and the web page."""
