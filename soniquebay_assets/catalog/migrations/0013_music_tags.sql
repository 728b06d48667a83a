-- Learned tags of the MusiCNN taggers (domain/analysis/music_tags.py) from analysis version 9 on: the 50 MSD and
-- 50 MTT tag probabilities as JSON {"msd": {tag: p}, "mtt": {tag: p}}, and the audio embedding (both models'
-- penultimate layers, 2 x 200 float32 little-endian, averaged over the analysed patches). NULL: not measured.
ALTER TABLE track_analysis ADD COLUMN music_tags TEXT;
ALTER TABLE track_analysis ADD COLUMN audio_embedding BLOB;
