"""A small built-in calibration set for :func:`squeezebert.quantize_dynamic`: generic English sentences.

Written for this package (questions, instructions, narration, numbers, short replies), so that the int8 calibration
sees the activations of real text rather than of random token ids. Any text of the model's domain does better;
pass it as ``calibration_texts``.
"""

from __future__ import annotations

CALIBRATION_TEXTS: tuple[str, ...] = (
    "The weather was cold this morning, so we stayed inside and read.",
    "Can you tell me how to get to the nearest train station?",
    "Our team shipped the new release on Friday after two weeks of testing.",
    "I don't think that is a good idea.",
    "Please send the report to everyone before the meeting starts.",
    "The museum opens at nine and closes at five on weekdays.",
    "What is the difference between a virus and a bacterium?",
    "He forgot his keys again and had to wait for his sister to come home.",
    "Add two cups of flour, a pinch of salt and mix until smooth.",
    "The river flooded the fields after three days of heavy rain.",
    "Why do cats sleep so much during the day?",
    "OK, see you tomorrow.",
    "The company reported revenue of 4.2 billion dollars, up 8% from last year.",
    "She studied physics in Munich and later taught at a school in Lyon.",
    "Turn left at the second traffic light and park behind the bakery.",
    "My phone battery dies before lunch, what should I do?",
    "The children built a small boat out of wood and painted it red.",
    "Who wrote the novel that the film was based on?",
    "Interest rates are expected to stay unchanged until the end of the year.",
    "I love this song!",
    "The server returned an error because the password was wrong.",
    "Mountains cover most of the island, and the villages sit along the coast.",
    "Do you prefer coffee or tea in the afternoon?",
    "The doctor said the results look normal and there is nothing to worry about.",
    "Water boils at 100 degrees Celsius at sea level.",
    "We missed the last bus and walked home in the dark.",
    "Could you explain that again, more slowly?",
    "The old library was turned into a cafe with a reading room upstairs.",
    "Nobody knows exactly how many languages are spoken in the world.",
    "Thank you so much for your help yesterday.",
    "The match ended in a draw after a late goal in the final minute.",
    "Computers store numbers in binary, as sequences of zeros and ones.",
    "Where did you put the scissors?",
    "The committee will announce its decision next Tuesday at noon.",
    "A small dog was barking at the mailman from behind the fence.",
    "I am not sure, but I think the shop is closed on Sundays.",
    "Plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The flight to Tokyo was delayed by three hours because of a storm.",
    "Is it possible to cancel my order and get a refund?",
    "They painted the kitchen yellow and replaced the old wooden floor.",
    "Hello, how are you doing today?",
    "Reading a book before bed helps me fall asleep faster.",
    "The price of the ticket includes breakfast and a guided tour of the castle.",
    "If it rains tomorrow, the concert will move to the hall next door.",
    "Good night!",
    "The engineers measured the bridge and found a crack near the second pillar.",
    "How many people live in the largest city of Canada?",
    "Learning to play the piano takes patience and a lot of practice.",
)
