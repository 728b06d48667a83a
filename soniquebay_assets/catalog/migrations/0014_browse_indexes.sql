-- Indexes behind the HTTP API's default listings (catalog/browse.py): each holds one sort's keys in order, so
-- a page, its cursor's range read included, is an index walk of 51 rows instead of a sort of the whole table.
-- The expressions are spelled exactly as the listings' ORDER BY (disc and track numbers without a tag sort as 0).

CREATE INDEX tracks_by_artist ON tracks(artist_display, album_id, (COALESCE(disc_number, 0)),
                                        (COALESCE(track_number, 0)), track_id);
CREATE INDEX tracks_by_title ON tracks(title, track_id);
CREATE INDEX albums_by_artist ON albums(album_artist, title, album_id);
CREATE INDEX artists_by_name ON artists(name, artist_id);
